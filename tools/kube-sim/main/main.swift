// kube-sim: the simulated management cluster (issue 5).
print("kube-sim: not built yet")
