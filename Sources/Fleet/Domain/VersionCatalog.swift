/// The Kubernetes releases a cluster may run and a chained upgrade may step through, each
/// with the machine image to boot for it when one is given (Capstan's `VersionCatalog` kind).
///
/// Entries are kept sorted, oldest first; a version listed twice is refused.
public struct VersionCatalog: Hashable, Sendable, Codable {
    public struct Entry: Hashable, Sendable, Codable {
        public var version: KubernetesVersion
        /// The containerDisk image machines at this version boot, when the catalog names one.
        public var machineImage: String?

        public init(version: KubernetesVersion, machineImage: String? = nil) {
            self.version = version
            self.machineImage = machineImage
        }
    }

    /// Every entry, oldest version first.
    public private(set) var entries: [Entry]

    /// - Throws: ``DomainError`` with code `duplicateVersion` when a version appears twice.
    public init(entries: [Entry]) throws {
        let sorted = entries.sorted { $0.version < $1.version }
        for (earlier, later) in zip(sorted, sorted.dropFirst()) where earlier.version == later.version {
            throw DomainError(.duplicateVersion, "the catalog lists version \(later.version) more than once")
        }
        self.entries = sorted
    }

    /// A catalog of `versions` with no machine images.
    ///
    /// - Throws: ``DomainError`` with code `duplicateVersion` when a version appears twice.
    public init(versions: [KubernetesVersion]) throws {
        try self.init(entries: versions.map { Entry(version: $0) })
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(entries: container.decode([Entry].self, forKey: .entries))
        } catch let error as DomainError {
            throw DecodingError.dataCorruptedError(forKey: .entries, in: container, debugDescription: error.message)
        }
    }

    /// Every version, oldest first.
    public var versions: [KubernetesVersion] { entries.map(\.version) }

    /// Whether the catalog lists `version`.
    public func contains(_ version: KubernetesVersion) -> Bool { entry(for: version) != nil }

    /// The entry of `version`, if listed.
    ///
    /// - Complexity: O(log n).
    public func entry(for version: KubernetesVersion) -> Entry? {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].version < version { low = middle + 1 } else { high = middle }
        }
        return low < entries.count && entries[low].version == version ? entries[low] : nil
    }

    /// The machine image for `version`, when the catalog lists the version and names an image.
    public func machineImage(for version: KubernetesVersion) -> String? { entry(for: version)?.machineImage }

    /// The versions of one minor line, oldest first.
    public func versions(of minor: KubernetesMinor) -> [KubernetesVersion] {
        entries.lazy.map(\.version).filter { $0.minorLine == minor }
    }

    /// The newest listed patch of `minor`, if the catalog has any release of it.
    public func newestPatch(of minor: KubernetesMinor) -> KubernetesVersion? { versions(of: minor).last }

    /// The minor lines the catalog covers, oldest first, each once.
    public var minors: [KubernetesMinor] {
        var result: [KubernetesMinor] = []
        for entry in entries where result.last != entry.version.minorLine { result.append(entry.version.minorLine) }
        return result
    }
}
