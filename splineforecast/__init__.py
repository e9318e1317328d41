"""splineforecast: spline gap-filling and recurrent forecasting, tracked in MLflow."""

__version__ = "0.1.0"
