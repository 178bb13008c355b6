//! The recipes (standard, step-by-step, minds-mirror, mapd, elad) as compositions of shared
//! stages. Built so far: [`annotate`], the teacher stage that asks every configured teacher for
//! chains of thought, parses them and stores them with provenance.

pub mod annotate;
