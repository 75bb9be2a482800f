extension Duration {
    /// The duration in seconds, for rates and printed figures.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension Array where Element == Duration {
    /// The value at fraction `p` of a sorted array (nearest rank), or zero when empty.
    public func percentile(_ p: Double) -> Duration {
        guard !isEmpty else { return .zero }
        let rank = Int((p * Double(count)).rounded(.up)) - 1
        return self[Swift.min(Swift.max(rank, 0), count - 1)]
    }
}
