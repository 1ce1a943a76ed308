//! Accessible names for controls without a visible label (icon buttons, the progress bar).
//! GTK 4.8 has only the variadic C call for this (gtk-rs binds it from 4.10 on), so it is
//! declared here.

use gtk::glib::translate::ToGlibPtr;
use gtk::prelude::*;
use std::ffi::{c_char, c_int, c_void};

extern "C" {
    // Every GtkWidget implements GtkAccessible; the list ends with -1.
    fn gtk_accessible_update_property(accessible: *mut c_void, first_property: c_int, ...);
}

/// Sets the name a screen reader announces for `widget`.
pub fn set_label(widget: &impl IsA<gtk::Widget>, label: &str) {
    let text = std::ffi::CString::new(label.replace('\0', "")).expect("no NUL left");
    let ptr: *mut gtk::ffi::GtkWidget = widget.as_ref().to_glib_none().0;
    // SAFETY: a live widget, one (LABEL, const char*) pair terminated by -1 as the C API
    // requires; GTK copies the string before returning.
    unsafe {
        gtk_accessible_update_property(
            ptr.cast(),
            gtk::ffi::GTK_ACCESSIBLE_PROPERTY_LABEL as c_int,
            text.as_ptr() as *const c_char,
            -1 as c_int,
        );
    }
}
