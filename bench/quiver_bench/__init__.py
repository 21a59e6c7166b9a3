"""The pieces of bench/run.py: scenarios, data, peers, memory sampling, reports."""
