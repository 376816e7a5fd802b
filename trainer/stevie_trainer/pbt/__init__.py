"""Population-based training: the population state, fitness, exploit/explore (torch-free,
shared with the operator), member intervals, the finish step and its plots."""
