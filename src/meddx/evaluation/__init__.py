"""Evaluation shared by every model's evaluation stage: statistics, figures, explanations.

Pure functions of (labels, scores) live in `stats`; `scoring` turns one classifier's test
scores into an `Evaluation`, `plot_files` writes it as DVC plot data and PNGs (drawn by
`figures`), `case_grids` picks and lays out the explained test cases (Grad-CAM from
`explain`), and `run_summary` formats it for the stage's MLflow run. The CNN and RNN
evaluation stages call the same functions, so they write the same metrics layout, DVC plot
files and MLflow artifacts.
"""
