"""Interest-migration pipeline: Spark jobs, the lake and shared configuration.

Every stage runs as ``python -m jobs <stage> [--lake DIR] [--date YYYY-MM-DD]``;
see ``jobs.cli`` for the list.
"""
