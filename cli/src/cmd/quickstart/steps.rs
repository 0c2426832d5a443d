//! The quickstart's numbered steps: each prints `[n/N] title`, its detail lines indented
//! under it, and its time; a failure names the step and carries the reason.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::progress::format_duration;

/// A failed step: which one and why (the reason is the error's source chain).
#[derive(Debug, thiserror::Error)]
#[error("quickstart failed at step {index}/{total} ({title})")]
pub struct StepFailed {
    pub index: usize,
    pub total: usize,
    pub title: String,
    #[source]
    pub source: anyhow::Error,
}

/// Runs and times the steps.
#[derive(Debug)]
pub struct Steps {
    total: usize,
    index: usize,
    /// Title and time of every finished step.
    pub timings: Vec<(String, Duration)>,
}

/// Prints a detail line under the current step.
pub fn detail(text: &str) {
    for line in text.lines() {
        println!("      {line}");
    }
}

impl Steps {
    /// `total` steps to come.
    pub fn new(total: usize) -> Steps {
        Steps {
            total,
            index: 0,
            timings: Vec::new(),
        }
    }

    /// Runs the next step.
    pub async fn run<T>(
        &mut self,
        title: &str,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> Result<T, StepFailed> {
        self.index += 1;
        println!("[{}/{}] {title}", self.index, self.total);
        let started = Instant::now();
        match work.await {
            Ok(value) => {
                let took = started.elapsed();
                detail(&format!("done in {}", format_duration(took.as_secs_f64())));
                self.timings.push((title.to_string(), took));
                Ok(value)
            }
            Err(source) => Err(StepFailed {
                index: self.index,
                total: self.total,
                title: title.to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_step_says_which_and_why() {
        let mut steps = Steps::new(3);
        steps.run("first", async { Ok(()) }).await.expect("first");
        let err = steps
            .run("second", async {
                Err::<(), _>(anyhow::anyhow!("the disk is full"))
            })
            .await
            .expect_err("fails");
        let text = format!("{:#}", anyhow::Error::new(err));
        assert_eq!(
            text,
            "quickstart failed at step 2/3 (second): the disk is full"
        );
        assert_eq!(steps.timings.len(), 1);
        assert_eq!(steps.timings[0].0, "first");
    }
}
