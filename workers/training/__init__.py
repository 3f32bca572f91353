"""Training campaigns (kind ``training``): learning curves of GNN variants × recipes × seeds."""
