/* stb's implementations for the fuzz build, compiled with the sanitizers and
 * coverage instead of linking Debian's prebuilt libstb.so. Same configuration
 * as that library: Debian ships it "with all optional macros unset"
 * (/usr/share/doc/libstb0/README.Debian), i.e. SSE2 paths on x86-64,
 * thread-local failure reasons, malloc/free, assert() enabled. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
