import { BrowserRouter, Route, Routes } from "react-router";

import { RequireSignIn } from "./auth/guards";
import { Layout } from "./components/Layout";
import { ConfirmPage } from "./pages/auth/ConfirmPage";
import { SignInPage } from "./pages/auth/SignInPage";
import { SignUpPage } from "./pages/auth/SignUpPage";
import { DatasetPage } from "./pages/datasets/DatasetPage";
import { DatasetsPage } from "./pages/datasets/DatasetsPage";
import { NewDatasetPage } from "./pages/datasets/NewDatasetPage";
import { EvaluationPage } from "./pages/evaluations/EvaluationPage";
import { EvaluationsPage } from "./pages/evaluations/EvaluationsPage";
import { NewEvaluationPage } from "./pages/evaluations/NewEvaluationPage";
import { HomePage } from "./pages/HomePage";
import { JobPage } from "./pages/jobs/JobPage";
import { JobsPage } from "./pages/jobs/JobsPage";
import { NewJobPage } from "./pages/jobs/NewJobPage";
import { ImportModelPage } from "./pages/models/ImportModelPage";
import { ModelPage } from "./pages/models/ModelPage";
import { ModelsPage } from "./pages/models/ModelsPage";
import { NewModelPage } from "./pages/models/NewModelPage";
import { NotFoundPage } from "./pages/NotFoundPage";

/** Every page of the site. A new capability adds its pages here and its link in the Layout. */
export function App() {
  return (
    <BrowserRouter>
      <Routes>
        <Route element={<Layout />}>
          <Route index element={<HomePage />} />
          <Route path="sign-in" element={<SignInPage />} />
          <Route path="sign-up" element={<SignUpPage />} />
          <Route path="confirm" element={<ConfirmPage />} />
          <Route element={<RequireSignIn />}>
            <Route path="datasets" element={<DatasetsPage />} />
            <Route path="datasets/new" element={<NewDatasetPage />} />
            <Route path="datasets/:datasetId" element={<DatasetPage />} />
            <Route path="models" element={<ModelsPage />} />
            <Route path="models/new" element={<NewModelPage />} />
            <Route path="models/import" element={<ImportModelPage />} />
            <Route path="models/:modelId" element={<ModelPage />} />
            <Route path="jobs" element={<JobsPage />} />
            <Route path="jobs/new" element={<NewJobPage />} />
            <Route path="jobs/:jobId" element={<JobPage />} />
            <Route path="evaluations" element={<EvaluationsPage />} />
            <Route path="evaluations/new" element={<NewEvaluationPage />} />
            <Route path="evaluations/:evaluationId" element={<EvaluationPage />} />
          </Route>
          <Route path="*" element={<NotFoundPage />} />
        </Route>
      </Routes>
    </BrowserRouter>
  );
}
