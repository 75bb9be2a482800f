import ArgumentParser

@main
struct Capstan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capstan",
        abstract: "Run and inspect durable lifecycle workflows for Kubernetes fleets.",
        version: "0.1.0"
    )
}
