import CImageCodecs
import Foundation

/// JPEG decoding with libjpeg-turbo through the C shim of Sources/CImageCodecs, whose
/// `error_exit` longjmps inside C so that a corrupt file is an error return, never `exit()`.
/// Output is 8-bit grey or RGB (YCbCr converted by libjpeg with its default islow DCT and fancy
/// upsampling, as Pillow); CMYK/YCCK files are refused; EXIF orientation is ignored (as
/// torchvision's `pil_loader`). A file that ends early is an error, not a grey-padded image.
public enum JPEGDecoder {
    public static func decode(_ bytes: [UInt8], maximumPixels: Int = ImageDecoding.maximumPixels) throws -> DecodedImage {
        guard !bytes.isEmpty else { throw ImageDecodingError.empty }
        return try bytes.withUnsafeBufferPointer { data -> DecodedImage in
            guard let decoder = ic_jpeg_create(data.baseAddress, data.count) else {
                throw ImageDecodingError.corrupt(format: "JPEG", reason: "libjpeg could not allocate its decoder")
            }
            defer { ic_jpeg_destroy(decoder) }
            func reason() -> String { String(cString: ic_jpeg_message(decoder)) }

            var width: UInt32 = 0, height: UInt32 = 0
            var components: Int32 = 0, space: Int32 = 0
            guard ic_jpeg_read_header(decoder, &width, &height, &components, &space) == 0 else {
                throw ImageDecodingError.corrupt(format: "JPEG", reason: reason())
            }
            let channels: Int
            switch Int(space) {
            case Int(IC_JPEG_GRAY): channels = 1
            case Int(IC_JPEG_RGB): channels = 3
            case Int(IC_JPEG_CMYK):
                throw ImageDecodingError.unsupported(format: "JPEG", reason: "CMYK colour (print separations) is not"
                                                     + " converted; save the image as RGB, e.g. `convert IN -colorspace sRGB OUT.jpg`")
            default:
                throw ImageDecodingError.unsupported(format: "JPEG", reason: "\(components)-component colour space"
                                                     + " is neither grey nor YCbCr/RGB")
            }
            let w = Int(width), h = Int(height)
            let size = try ImageDecoding.checkedSize(width: w, height: h, channels: channels, maximumPixels: maximumPixels)
            var pixels = [UInt8](repeating: 0, count: size)
            let status = pixels.withUnsafeMutableBufferPointer {
                ic_jpeg_decode(decoder, $0.baseAddress, w * channels, size)
            }
            guard status == 0 else { throw ImageDecodingError.corrupt(format: "JPEG", reason: reason()) }
            return DecodedImage(width: w, height: h, channels: channels, pixels: pixels)
        }
    }
}
