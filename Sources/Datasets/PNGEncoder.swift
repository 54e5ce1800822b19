import CLibPNG
import Foundation

/// PNG encoding with libpng's simplified API (`png_image_write_to_memory`, png.h): 8-bit grey
/// or RGB, for writing image folders (tests, exports).
public enum PNGEncoder {
    public struct EncodingError: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "PNG encoding failed: \(reason)" }
    }

    public static func encode(_ image: DecodedImage) throws -> [UInt8] {
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = image.channels == 3 ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0
        defer { png_image_free(&png) }
        var size = 0
        let stride = Int32(image.width * image.channels)
        // First call measures, second writes.
        var ok = image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, nil, &size, 0, $0.baseAddress, stride, nil) }
        guard ok != 0, size > 0 else { throw EncodingError(reason: "libpng could not size the image") }
        var out = [UInt8](repeating: 0, count: size)
        ok = out.withUnsafeMutableBytes { dst in
            image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, dst.baseAddress, &size, 0, $0.baseAddress, stride, nil) }
        }
        guard ok != 0 else { throw EncodingError(reason: "libpng could not write the image") }
        return Array(out.prefix(size))
    }
}
