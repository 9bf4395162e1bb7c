"""The run report: loading runs and their labels, the plots, the HTML page, and writing them through a store."""
