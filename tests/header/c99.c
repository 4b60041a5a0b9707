/* include/cloudlet.h must compile alone as strict C99 (see tests/meson.build
 * for the flags) and its macros must initialise the structs they name. */
#include <cloudlet.h>

int main(void) {
	cloudlet_ctx_options o = CLOUDLET_CTX_OPTIONS_INIT;
	cloudlet_doctor_options d = CLOUDLET_DOCTOR_OPTIONS_INIT;
	return (int)(o.version + d.version) == 2 ? 0 : 1;
}
