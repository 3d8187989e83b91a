"""What a study and its analysis are, independent of files and models: study, analysis results, errors, the notice, jobs, bundled resources."""
