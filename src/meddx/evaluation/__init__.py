"""Evaluation shared by every model's evaluation stage: statistics, figures, explanations.

Pure functions of (labels, scores) live in `stats`, drawing in `figures`, Grad-CAM in
`explain`; `classifier` strings them together for one classifier so that the CNN and RNN
evaluation stages write the same metrics layout, DVC plot files and MLflow artifacts.
"""
