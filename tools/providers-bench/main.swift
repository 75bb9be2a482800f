print("providers-bench: not built yet")
