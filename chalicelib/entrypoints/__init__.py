"""Entry points: a Lambda event, an HTTP request or a command line in; one use case called; its answer out."""
