# Warnings every quiver target compiles with; errors in CI.
set(QUIVER_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wimplicit-fallthrough)
if(QUIVER_WARNINGS_AS_ERRORS)
  list(APPEND QUIVER_WARNING_FLAGS -Werror)
endif()

if(QUIVER_SANITIZE)
  add_compile_options(-fsanitize=${QUIVER_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${QUIVER_SANITIZE})
endif()
