/// An error of the engine's API: a code to switch on and a message naming the workflow,
/// stream or field and the reason.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// A workflow with the same unique key is running; the message names it.
        public static let alreadyRunning = Code(name: "alreadyRunning")
        /// A workflow with this id exists (running or finished); ids are never reused.
        public static let workflowExists = Code(name: "workflowExists")
        /// No workflow type of this name is registered.
        public static let unknownWorkflowType = Code(name: "unknownWorkflowType")
        /// A stored event or snapshot cannot be read.
        public static let corruptHistory = Code(name: "corruptHistory")
        /// The store failed to answer (a read error); nothing was decided on its behalf.
        public static let storeFailure = Code(name: "storeFailure")
        /// The engine is stopping or stopped.
        public static let stopped = Code(name: "stopped")
        /// Bad input from a caller; the message names the field.
        public static let invalidInput = Code(name: "invalidInput")
        /// An append expected another revision of a stream; nothing was written.
        public static let wrongExpectedRevision = Code(name: "wrongExpectedRevision")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
