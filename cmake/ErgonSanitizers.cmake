# ERGON_SANITIZE applies to every target of the build (library, tests and apps alike), because
# mixing instrumented and uninstrumented code gives false reports under TSan.
if(ERGON_SANITIZE)
  add_compile_options(-fsanitize=${ERGON_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${ERGON_SANITIZE})
endif()
