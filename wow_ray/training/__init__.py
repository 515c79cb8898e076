"""The fine-tuning loop the training jobs call (Ray Train), and its synchronisers."""
