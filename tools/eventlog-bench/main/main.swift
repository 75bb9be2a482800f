// eventlog-bench: the EventLog benchmark (issue 3).
print("eventlog-bench: not built yet")
