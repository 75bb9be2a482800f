print("engine-crash-driver: not built yet")
