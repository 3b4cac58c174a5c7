"""Quality: fidelity (how close to real), diversity and privacy (memorisation) of the synthetic set;
`run.evaluate_quality` computes all three from `eval.records.TrialRecord`s.
"""
