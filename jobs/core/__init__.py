"""What every stage shares and none of them is: settings, errors, the Spark session and its jars, the lake and
its one gated write, the quality gate, the run records, the tables' names and the held-predictions protocol."""
