"""The run report: loading runs and their labels, the plots, the HTML page, adaptive runs against
uniform sampling, and writing them through a store."""
