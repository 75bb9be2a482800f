// Codable forms used in snapshots (the `state` database), not in events: events use
// `StoredFields` in WorkflowEventCodec.swift.

extension RetryPolicy: Codable {
    public init(from decoder: any Decoder) throws {
        let stored = try StoredRetry(from: decoder)
        self = try stored.policy(context: "retry policy")
    }

    public func encode(to encoder: any Encoder) throws {
        try StoredRetry(self).encode(to: encoder)
    }
}

extension ActivityRequest: Codable {
    private enum CodingKeys: String, CodingKey {
        case activityID, name, input, retry, timeoutNanoseconds, concurrencyKey, repeatable
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            activityID: try container.decode(String.self, forKey: .activityID),
            name: try container.decode(String.self, forKey: .name),
            input: try container.decode(String.self, forKey: .input),
            retry: try container.decode(RetryPolicy.self, forKey: .retry),
            startToCloseTimeout: .nanoseconds(try container.decode(Int64.self, forKey: .timeoutNanoseconds)),
            concurrencyKey: try container.decodeIfPresent(String.self, forKey: .concurrencyKey),
            repeatable: try container.decodeIfPresent(Bool.self, forKey: .repeatable) ?? false)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(activityID, forKey: .activityID)
        try container.encode(name, forKey: .name)
        try container.encode(input, forKey: .input)
        try container.encode(retry, forKey: .retry)
        try container.encode(startToCloseTimeout.nanosecondsClamped, forKey: .timeoutNanoseconds)
        try container.encodeIfPresent(concurrencyKey, forKey: .concurrencyKey)
        if repeatable { try container.encode(true, forKey: .repeatable) }
    }
}
