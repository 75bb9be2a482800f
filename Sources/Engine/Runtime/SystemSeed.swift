/// The engine's one draw from the system's random generator: the default seed of
/// ``EngineCore/Options``. Outside the determinism scan (TidyTests), like the runtime's clock.
public enum SystemSeed {
    public static func next() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }
}
