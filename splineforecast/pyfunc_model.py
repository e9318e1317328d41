"""The MLflow pyfunc model of a run, logged as code ("models from code"): nothing is pickled.

MLflow runs this file when the model loads; ``set_model`` names the model object, and
``load_context`` rebuilds it from the logged artifacts: the preprocessor (JSON), the best
checkpoint (``torch.load(weights_only=True)``), ``serving.json`` (window lengths, time column, quantile
levels) and, for a conformally calibrated run, ``calibration.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

from splineforecast.files import read_json
from splineforecast.records import ServingSettings
from splineforecast.serving import Forecaster, load_forecaster
from splineforecast.serving_panel import PanelForecaster


class SplineForecastModel(PythonModel):
    """``predict(history)`` -> the forecast after it (see :func:`splineforecast.serving.forecast`)."""

    forecaster: Forecaster | PanelForecaster

    def load_context(self, context: PythonModelContext) -> None:
        path = Path(context.artifacts["settings"])
        settings = ServingSettings.from_json(read_json(path), path)
        calibration = context.artifacts.get("calibration")  # model.calibration=conformal only
        self.forecaster = load_forecaster(
            Path(context.artifacts["preprocessor"]),
            Path(context.artifacts["checkpoint"]),
            settings,
            Path(calibration) if calibration else None,
        )

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return self.forecaster.predict(model_input)


set_model(SplineForecastModel())
