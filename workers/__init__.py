"""What runs on a worker: balancers, workloads and the training loop.

Never imports `study` or `db`: a worker trains and returns numbers.
"""
