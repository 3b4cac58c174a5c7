"""Evaluation, separate from generation: it reads the files `trialwright generate` writes
(`synthetic_reports`, the one reader) and never imports graph/.

- `utility/`: does synthetic data help an outcome classifier on real trials (`trialwright eval`);
- `quality/`: fidelity, diversity and privacy against the real corpus (over `records`);
- `judges/`: judge studies, human review sheets and their agreement (`trialwright judge`, `review`);
- `report/`: the eval card, one renderer for every section (`trialwright card`).
"""
