"""DeAR: decoupled all-reduce for data-parallel training (arXiv 2302.12445), for torch.distributed."""
