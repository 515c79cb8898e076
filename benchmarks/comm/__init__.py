"""The communication-scheduler comparison of issue 6: models, schedulers, the per-rank harness,
the launcher, the performance model, ResNet-50/BERT-base shapes and the report.
`benchmarks/bench_comm.py` (emulated cluster) and `train_jobs/comm_benchmark.py` (Ray) drive it."""
