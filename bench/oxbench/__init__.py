"""The oxwsgi benchmark (bench/run): harness, scenarios, report."""
