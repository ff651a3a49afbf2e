"""A tiny calculator that oxi's demo grows, one roadmap item at a time."""
