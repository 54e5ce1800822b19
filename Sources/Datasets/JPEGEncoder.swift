import CImageCodecs
import Foundation

/// JPEG encoding with libjpeg-turbo through Sources/CImageCodecs (errors return, never exit):
/// 8-bit grey or RGB, libjpeg's default 4:2:0 subsampling for RGB. For writing image folders
/// (tests, exports).
public enum JPEGEncoder {
    public struct EncodingError: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "JPEG encoding failed: \(reason)" }
    }

    public static func encode(_ image: DecodedImage, quality: Int = 90) throws -> [UInt8] {
        precondition((1...100).contains(quality), "JPEGEncoder: quality \(quality) is outside 1...100")
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { pixels in
            ic_jpeg_encode(pixels.baseAddress, UInt32(image.width), UInt32(image.height), Int32(image.channels),
                           Int32(quality), &out, &size, &message, message.count)
        }
        defer { ic_free(out) }
        guard status == 0, let out else { throw EncodingError(reason: String(cString: message)) }
        return Array(UnsafeBufferPointer(start: out, count: Int(size)))
    }
}
