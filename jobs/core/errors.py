"""Errors that speak to the user: the CLI prints their message as one line."""


class PipelineError(RuntimeError):
    """A problem with the input or the request (not a bug): exit 1 with this message."""
