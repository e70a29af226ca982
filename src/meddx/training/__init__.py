"""Training plumbing shared by the CNN, RNN and GAN paths."""
