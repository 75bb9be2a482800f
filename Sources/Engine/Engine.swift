// The Engine module: durable workflows as deciders over the EventLog (issue 4).
