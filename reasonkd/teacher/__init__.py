"""Teacher side: chain-of-thought trace generation with verification, and the top-k logit cache."""
