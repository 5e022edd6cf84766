# Warnings for Ergon's own targets. CI turns them into errors (ERGON_WERROR=ON).
function(ergon_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough
                                           # designated initializers may leave members at their defaults
                                           -Wno-missing-field-initializers)
  if(ERGON_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
