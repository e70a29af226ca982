"""The pipeline's report for people (stage `report`): what is measured, beside what is published.

`cells` writes a figure and its interval as table text, `published` sets a model beside the
published rows of reference/published.yaml, `build` lays the whole document out (as
`evaluation.document.Document`, Markdown and HTML at once) from the metrics files and runs.
"""
