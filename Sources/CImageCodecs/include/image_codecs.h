#ifndef IMAGE_CODECS_H
#define IMAGE_CODECS_H

#include <stddef.h>

/// A JPEG decoder over bytes in memory whose libjpeg errors come back as return values: the
/// library's error_exit (which would call exit()) longjmps to the C function that called into
/// libjpeg, never across Swift frames. Corrupt-data warnings that mean the data ended early
/// (libjpeg's JWRN_JPEG_EOF, which would otherwise pad the image with grey) are errors too.
/// Used by Sources/Datasets/JPEGDecoder.swift.
typedef struct ic_jpeg ic_jpeg;

/// Colour spaces of the decoded output, as libjpeg reports the file's (jpeglib.h J_COLOR_SPACE).
enum {
    IC_JPEG_GRAY = 1,
    IC_JPEG_RGB = 2,   /* YCbCr or RGB in the file */
    IC_JPEG_CMYK = 4,  /* CMYK or YCCK in the file */
    IC_JPEG_OTHER = 0,
};

/// A decoder for `size` bytes at `data` (kept by the caller until ic_jpeg_close); NULL when out
/// of memory.
ic_jpeg *ic_jpeg_create(const unsigned char *data, size_t size);

/// Reads the header. Returns 0 and the image's size, component count and colour space, or -1
/// (ic_jpeg_message says why).
int ic_jpeg_read_header(ic_jpeg *decoder, unsigned int *width, unsigned int *height, int *components,
                        int *color_space);

/// Decodes the image (after ic_jpeg_read_header) into `buffer`: rows of `width * components`
/// bytes, `stride` bytes apart, grey or RGB (YCbCr converted by libjpeg). `buffer_size` bytes are
/// available. Returns 0, or -1 (ic_jpeg_message says why).
int ic_jpeg_decode(ic_jpeg *decoder, unsigned char *buffer, size_t stride, size_t buffer_size);

/// The last error's text (empty if none).
const char *ic_jpeg_message(const ic_jpeg *decoder);

/// Frees the decoder (NULL is fine).
void ic_jpeg_destroy(ic_jpeg *decoder);

/// Encodes `height` rows of `width * components` bytes (1: grey, 3: RGB) at `quality` (1-100,
/// libjpeg's default 4:2:0 subsampling for RGB) into a buffer from malloc, returned in `*out`
/// and `*out_size` (free it with ic_free). Returns 0, or -1 with the reason in `message`
/// (`message_size` bytes).
int ic_jpeg_encode(const unsigned char *pixels, unsigned int width, unsigned int height, int components, int quality,
                   unsigned char **out, unsigned long *out_size, char *message, size_t message_size);

/// free() for buffers returned by ic_jpeg_encode.
void ic_free(void *buffer);

#endif
