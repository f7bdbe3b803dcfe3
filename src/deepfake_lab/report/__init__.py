"""Pictures and pages for people: image grids, loss and metric curves, ROC/PR and
reliability plots, video timelines, and the HTML reports of runs, evaluations and scans
(every file name escaped)."""
