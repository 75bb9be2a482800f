import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes the connection instead of sending a response that carries the reset marker.
///
/// The responder cannot reach its channel, so a fault that must look like a dropped
/// connection (before or after the change was applied) is a response with a private
/// header; this handler, between the HTTP codec and Hummingbird, sees it first and closes.
final class ConnectionResetHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let marker = HTTPField.Name("x-kube-sim-connection-reset")!
    private var resetting = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head(let head) = unwrapOutboundIn(data), head.headerFields[ConnectionResetHandler.marker] != nil {
            resetting = true
            context.close(promise: nil)
        }
        if resetting {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }
}
