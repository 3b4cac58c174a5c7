"""Judge reliability: studies (ask several judges, with bias probes), human (review sheets read
back as verdict rows), agreement (the statistics of `agreement.json`).
"""
