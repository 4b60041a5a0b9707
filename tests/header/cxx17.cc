// include/cloudlet.h must compile alone as strict C++17.
#include <cloudlet.h>

int main() {
	cloudlet_ctx_options o = CLOUDLET_CTX_OPTIONS_INIT;
	cloudlet_doctor_options d = CLOUDLET_DOCTOR_OPTIONS_INIT;
	return static_cast<int>(o.version + d.version) == 2 ? 0 : 1;
}
