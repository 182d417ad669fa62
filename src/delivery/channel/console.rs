//! The console channel: the message's text on standard error, in one piece (the default
//! without a config file, and the demo's).

use super::{Deliver, Forms, Sending, Thread, permanent};
use crate::render::alert::AlertView;
use crate::render::summary::{self, Report};

pub struct Console;

/// The text on standard error, in one write.
fn print(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

impl Deliver for Console {
    fn alert<'a>(&'a self, forms: &'a Forms<'a>, v: &'a AlertView, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            print(&forms.templates.console(v).map_err(permanent)?);
            Ok(())
        })
    }

    fn summary<'a>(&'a self, forms: &'a Forms<'a>, r: &'a Report, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            print(
                &summary::render(r, "summary.txt.j2", forms.template_dir, None)
                    .map_err(permanent)?,
            );
            Ok(())
        })
    }
}
