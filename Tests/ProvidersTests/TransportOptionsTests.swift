import Foundation
import KubeSimKit
import Providers
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal HTTP CONNECT proxy on 127.0.0.1 for one test: it records each CONNECT target and
/// tunnels the bytes to 127.0.0.1 at that target's port (kube-sim listens nowhere else).
final class ConnectProxy: Sendable {
    let port: Int
    private let listener: Int32
    private let seen = Mutex<[String]>([])
    var targets: [String] { seen.withLock { $0 } }

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(bound == 0 && listen(fd, 16) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            Thread { [self] in tunnel(client) }.start()
        }
    }

    private func tunnel(_ client: Int32) {
        defer { close(client) }
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard read(client, &byte, 1) == 1, head.count < 8192 else { return }
            head.append(byte)
        }
        let requestLine = String(decoding: head, as: UTF8.self).split(separator: "\r\n").first ?? ""
        let words = requestLine.split(separator: " ")
        guard words.count == 3, words[0] == "CONNECT", let port = words[1].split(separator: ":").last.flatMap({ UInt16($0) })
        else { return }
        seen.withLock { $0.append(String(words[1])) }
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(upstream) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return }
        let established = Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8)
        guard write(client, established, established.count) == established.count else { return }
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 16384)
        while poll(&fds, 2, -1) > 0 {
            for (index, other) in [(0, upstream), (1, client)] where fds[index].revents != 0 {
                let count = read(fds[index].fd, &buffer, buffer.count)
                guard count > 0, write(other, buffer, count) == count else { return }
            }
        }
    }
}

/// What the transport sends beyond the request: tls-server-name (CURLOPT_CONNECT_TO), proxy-url
/// (CURLOPT_PROXY), the User-Agent and Accept-Encoding: gzip, against kube-sim over HTTPS.
@Suite struct TransportOptionsTests {
    private static func start(_ configure: (inout KubeSimConfiguration) -> Void = { _ in }) async throws -> (KubeSim, TemporaryDirectory) {
        let directory = TemporaryDirectory()
        var configuration = KubeSimConfiguration(stateDirectory: directory.path, port: 0, seed: 7)
        configuration.delays = .immediate
        configure(&configuration)
        return (try await KubeSim.start(configuration), directory)
    }

    /// Goal: a serving certificate that names only `api.capstan.test` (not 127.0.0.1, where the
    /// server is) verifies with `tls-server-name: api.capstan.test` and with nothing else.
    /// Seen failing on purpose: without the CONNECT_TO rewrite in CurlTransfer, the kubeconfig
    /// with tls-server-name failed verification like the one without.
    @Test("Transport: tls-server-name verifies the certificate for that name, connecting to the server address")
    func tlsServerName() async throws {
        try await bounded("tlsServerName") {
            let (sim, directory) = try await Self.start { $0.serverNames = ["api.capstan.test"] }
            defer { _ = directory }
            do {
                // kube-sim's own kubeconfig says tls-server-name now, and is all it takes.
                let text = try String(contentsOfFile: sim.managementKubeconfigPath, encoding: .utf8)
                #expect(text.contains("tls-server-name: api.capstan.test"))
                let client = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath, retryPolicy: .none)
                #expect(client.connection.server == sim.url)
                #expect(client.connection.tlsServerName == "api.capstan.test")
                let namespace = try await client.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                #expect(namespace.metadata.name == "default")

                for name in [nil, "other.capstan.test"] as [String?] {
                    var connection = client.connection
                    connection.tlsServerName = name
                    let error = await #expect(throws: KubernetesError.self) {
                        _ = try await KubernetesClient(connection: connection, retryPolicy: .none)
                            .get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                    }
                    #expect(error?.transport?.code == .tlsVerificationFailed, "tls-server-name \(name ?? "unset")")
                }
            } catch {
                await sim.shutdown()
                throw error
            }
            await sim.shutdown()
        }
    }

    /// Goal: `proxy-url` sends requests through the proxy (a CONNECT tunnel for https), also with
    /// tls-server-name; a dead proxy is a connect failure, not a silent direct connection.
    @Test("Transport: proxy-url tunnels through the proxy")
    func proxyURL() async throws {
        try await bounded("proxyURL") {
            let (sim, directory) = try await Self.start()
            defer { _ = directory }
            let proxy = try ConnectProxy()
            do {
                let direct = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath, retryPolicy: .none)
                var connection = direct.connection
                connection.proxyURL = "http://127.0.0.1:\(proxy.port)"
                let proxied = KubernetesClient(connection: connection, retryPolicy: .none)
                _ = try await proxied.get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                #expect(proxy.targets == ["127.0.0.1:\(sim.port)"])
                #expect(!"\(connection)".contains("user:"))

                var dead = connection
                let closed = try ConnectProxy()
                closed.stop()
                dead.proxyURL = "http://127.0.0.1:\(closed.port)"
                let error = await #expect(throws: KubernetesError.self) {
                    _ = try await KubernetesClient(connection: dead, retryPolicy: .none)
                        .get(.namespaces, name: "default", namespace: nil, as: RawObject.self)
                }
                #expect(error?.transport?.code == .connectFailed)
            } catch {
                proxy.stop()
                await sim.shutdown()
                throw error
            }
            proxy.stop()
            await sim.shutdown()
        }
    }

    private struct ManagedConfigMap: Decodable {
        struct Metadata: Decodable {
            struct Entry: Decodable {
                var manager: String?
                var operation: String?
            }
            var managedFields: [Entry]?
        }
        var metadata: Metadata
    }

    /// Goal: the server sees Capstan's User-Agent. kube-sim, as kube-apiserver, records a create
    /// that names no field manager under the User-Agent's prefix: `capstan`.
    /// Seen failing on purpose: without CURLOPT_USERAGENT the create had no manager at all.
    @Test("Transport: the server sees User-Agent capstan/VERSION (os/arch)")
    func userAgent() async throws {
        #expect(ClientIdentity.userAgent.hasPrefix("capstan/"))
        #expect(ClientIdentity.userAgent.range(of: #"^capstan/\d+\.\d+\.\d+ \((linux|darwin)/(amd64|arm64)\)$"#, options: .regularExpression) != nil)
        try await bounded("userAgent") {
            try await withKubeSim { _, client in
                let configMap: JSONValue = [
                    "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "ua-probe"], "data": ["k": "v"],
                ]
                let created = try await client.create(.configMaps, configMap, namespace: "default", as: ManagedConfigMap.self)
                #expect(created.metadata.managedFields?.map(\.manager) == ["capstan"])
                #expect(created.metadata.managedFields?.first?.operation == "Update")
            }
        }
    }

    /// Goal: responses come back right whether the server gzips them or not. With kube-sim's
    /// threshold at 0 every JSON answer to `Accept-Encoding: gzip` is gzip-encoded (the header is
    /// there, curl decodes the body); with gzip off, plain. Seen failing on purpose: without
    /// CURLOPT_ACCEPT_ENCODING the client sent no Accept-Encoding and kube-sim never compressed.
    @Test("Transport: Accept-Encoding gzip: gzip and plain responses both decode")
    func gzip() async throws {
        try await bounded("gzip") {
            for threshold in [0, nil] as [Int?] {
                let (sim, directory) = try await Self.start { $0.gzipThresholdBytes = threshold }
                defer { _ = directory }
                do {
                    let client = try KubernetesClient(kubeconfigPath: sim.managementKubeconfigPath, retryPolicy: .none)
                    for index in 0..<20 {
                        let configMap: JSONValue = [
                            "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string("cm-\(index)")],
                            "data": ["payload": .string(String(repeating: "x", count: 2000))],
                        ]
                        _ = try await client.create(.configMaps, configMap, namespace: "default", as: RawObject.self)
                    }
                    let raw = try await client.getRaw(path: "/api/v1/namespaces/default/configmaps")
                    #expect(raw.headers["content-encoding"] == (threshold == nil ? nil : "gzip"), "threshold \(String(describing: threshold))")
                    #expect(raw.body.first == UInt8(ascii: "{"))
                    let all = try await client.listAll(.configMaps, namespace: "default", as: RawObject.self)
                    #expect(all.filter { $0.metadata.name?.hasPrefix("cm-") == true }.count == 20)
                } catch {
                    await sim.shutdown()
                    throw error
                }
                await sim.shutdown()
            }
        }
    }
}
