# The two commands of the README:
#   make demo   builds and runs the embedded demo (SQLite, no server needed)
#   make test   builds and runs every test (ASan+UBSan, TSan for concurrency, install check)
# Both install the Debian packages they need first (as root; otherwise they print the line).
# The CLI is built with the Azure Storage Queue client (ERGON_WITH_AZURE, off by default for
# applications that link the library): install-deps.sh installs libcurl and OpenSSL.
.PHONY: demo test deps build clean

demo:
	@scripts/install-deps.sh
	@cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DERGON_BUILD_TESTS=OFF \
	  -DERGON_WITH_AZURE=ON >/dev/null
	@cmake --build build/release --target ergon_cli
	@cd build && ./release/apps/ergon/ergon demo --exit-when-done

test:
	@scripts/install-deps.sh --test
	@scripts/test.sh

build:
	@scripts/install-deps.sh
	@cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DERGON_WITH_AZURE=ON >/dev/null
	@cmake --build build/release

clean:
	rm -rf build
