import Crypto

/// SHA-256 of `bytes` (swift-crypto).
func sha256(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }

/// `sha256:<hex>`: how a file's digest is recorded.
public func fileDigest(_ bytes: [UInt8]) -> String {
    "sha256:" + sha256(bytes).map { byte in
        let hex = String(byte, radix: 16)
        return byte < 16 ? "0" + hex : hex
    }.joined()
}
