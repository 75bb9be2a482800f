// KubeSimKit: the simulated management cluster and workload clusters (issue 5).
